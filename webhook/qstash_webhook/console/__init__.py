"""The web console at ``/ui/``: a small static page over JSON view models.

:mod:`.viewmodel` decides what each page shows (pure, tested as tables); :mod:`.service` fetches
the objects and asks RBAC, for the caller, about every part; :mod:`.views` serves the files, the
JSON and the seed's actions under one prefix, with the console's security headers.
"""
