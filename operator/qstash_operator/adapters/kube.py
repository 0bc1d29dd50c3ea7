"""Kubernetes API adapter."""
