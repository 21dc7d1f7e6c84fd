package websub

import "github.com/feedmon/feedmon/services/poller/websub/hubtest"

func sign(algo, secret string, body []byte) string { return hubtest.Sign(algo, secret, body) }
