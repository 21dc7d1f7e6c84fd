// Package websub is the poller's WebSub subscriber (W3C WebSub): it finds
// a feed's hub (discover.go), subscribes the feeds its poller polls and
// renews their leases (manager.go, client.go, with the subscriptions kept
// in KV: record.go), and serves the callback that hubs verify intent on
// and push signed content to (handler.go). Pushed feeds go to the poller,
// which publishes them as it would a fetch and polls them only rarely
// while the subscription holds.
package websub
