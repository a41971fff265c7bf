module github.com/simtrail/simtrail/services/simtrail

go 1.26.0

require (
	github.com/prometheus/procfs v0.22.0
	github.com/simtrail/simtrail/pkg v0.0.0
	github.com/simtrail/simtrail/proto v0.0.0
	github.com/simtrail/simtrail/services/ingest v0.0.0
	github.com/simtrail/simtrail/services/thresholds v0.0.0
	github.com/simtrail/simtrail/services/timeline v0.0.0
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/schollz/progressbar/v3 v3.19.1 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	golang.org/x/oauth2 v0.38.0
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/term v0.44.0 // indirect
	golang.org/x/time v0.16.0
)

replace (
	github.com/simtrail/simtrail/pkg => ../../pkg
	github.com/simtrail/simtrail/proto => ../../proto
	github.com/simtrail/simtrail/services/ingest => ../ingest
	github.com/simtrail/simtrail/services/thresholds => ../thresholds
	github.com/simtrail/simtrail/services/timeline => ../timeline
)
