module regclient-ext/benchmarks/delayproxy

go 1.26
