module github.com/simtrail/simtrail/services/timeline

go 1.26.0

require (
	github.com/simtrail/simtrail/pkg v0.0.0
	github.com/simtrail/simtrail/proto v0.0.0
	github.com/simtrail/simtrail/services/ingest v0.0.0
)

replace (
	github.com/simtrail/simtrail/pkg => ../../pkg
	github.com/simtrail/simtrail/proto => ../../proto
	github.com/simtrail/simtrail/services/ingest => ../ingest
)
