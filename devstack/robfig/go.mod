// A test helper, not a product: the differential test of domain/cron.py asks this process what
// robfig/cron (the parser and walk of the CronJob controller and of QStash) says.
module qstash-operator.dev/devstack/robfig

go 1.22

require github.com/robfig/cron/v3 v3.0.1
