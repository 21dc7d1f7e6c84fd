// Package poller fetches RSS, Atom and JSON feeds and publishes their new
// items on NATS (feedmon.items.<feed>, one message per item, Nats-Msg-Id =
// item id). Feed state, seen-sets and leases live in JetStream KV, so a
// restarted or second poller continues where another stopped.
//
// Decisions worth knowing:
//
//   - Fetching: its own net/http client. Connect and TLS handshake are
//     bounded by min(poll.timeout, 10s), the whole fetch (headers and body)
//     by poll.timeout. Bodies are decompressed by ReadBody, and the
//     poll.max_body_bytes cap applies after decompression. At most 5
//     redirects, loops refused. No HTTP proxy is used: a proxy would hide
//     the real destination from the address check.
//   - Addresses: private, loopback, link-local, CGNAT, multicast,
//     unspecified and reserved addresses (IPv4 and IPv6, IPv4-mapped and
//     NAT64/6to4-embedded forms) are refused unless inside
//     poll.allow_networks. The check runs in the dialer on the resolved
//     address, so it covers every redirect hop and DNS rebinding.
//   - Charsets (decode.go, parseFeed is the one entry point for a body):
//     byte-order mark or Appendix F zero-byte pattern (UTF-16/32), then
//     UTF-8 when the non-ASCII bytes are valid UTF-8 whatever is declared,
//     then the Content-Type charset, then the XML declaration; with nothing
//     usable declared, UTF-8 with stray bytes is repaired and anything else
//     detected. The body is converted to UTF-8 before gofeed sees it, and
//     each recovery is counted in feedmon_poll_recoveries_total{kind}.
//   - Items: id = event.ItemID(feed URL, key), key = GUID, else the resolved
//     link, else a SHA-256 of title, raw dates and content. A date before
//     1990 or more than 48h ahead of the fetch is not believed: the item is
//     published with an empty published field (the contract's "no usable
//     date"); the raw date still feeds the hash, so the id is stable. Feeds
//     with more than poll.max_items items keep the newest. Summaries are
//     plain text of at most 2,000 characters, titles at most 1,000; links
//     that are not http(s) or longer than 4 KiB are dropped, so no item can
//     exceed NATS's payload limit.
//   - Seen-set: per feed, the ids (and link+title hashes, which catch GUID
//     churn) of the items currently in the feed plus the most recent older
//     ones, at most max(2 x items in the feed, 200), capped at
//     max(2 x poll.max_items, 200). Items are published first and recorded
//     after, so a crash in between re-publishes (JetStream's duplicate window
//     drops the copy) rather than loses.
//   - Scheduling: the feed's interval, stretched (never shortened) by <ttl>,
//     sy:updatePeriod, Cache-Control max-age / Expires and by idleness (a
//     feed unchanged for 8 intervals), up to min(4 x interval, 30m) or the
//     interval if longer; +-10% jitter. A new feed's first poll falls
//     at a random point within min(interval/10, 1s), so feeds started
//     together do not publish their first items in one burst (the
//     pipeline's latency); politeness is per host and kept by the host's
//     line (the gap below) on top of that; the poll after a feed's first
//     is spread over half to one and a half intervals, so feeds started
//     together fall out of step. Errors back off exponentially from
//     the interval up to poll.max_backoff; a failure on our side (NATS
//     unavailable while publishing) does not, so feeds resume at their
//     interval after an outage. A 429/503 Retry-After postpones the
//     feed (capped at poll.max_backoff) and slows down, not stops, its
//     host: a short pause, then a slower pace for each of the host's
//     feeds for a bounded time (hostPolicy), on every poller sharing the
//     host's feeds (the slow-down is recorded in KV and watched).
//     Requests to one host start at least 500ms/poll.per_host apart, at
//     most poll.per_host at once; a fetch running longer than longFetch
//     gives up its slot (at most per_host such fetches per host), so
//     hanging feeds do not hold their host.
//   - Leases: a feed is polled by the poller holding its lease in KV
//     (compare-and-set on the revision). The holder renews it about every
//     other poll, to two intervals past its next poll; a clean stop
//     releases it, so another poller takes over within about one interval;
//     after a crash, once it expires (at most about three intervals plus
//     poll.timeout). Expiry is wall-clock time: pollers' clocks must agree
//     to well within an interval.
//   - State writes: an unchanged 304 writes its feed state to KV at most
//     every 10s, so steady polling does not cost a KV write per request.
//   - WebSub (push.go, package websub): with websub.callback_url set, the
//     poller holding a feed's lease subscribes it at the hub the fetch
//     discovered (or the feed's hub:), and polls it only every
//     websub.poll_interval while the subscription is active; when push
//     stops, the feed is polled at once. Pushed bodies go through
//     parseBody and publishNew like a poll's. The seen-set is written by
//     compare-and-set, merging another writer's ids on a conflict, so a
//     push and a poll of one feed never lose each other's items.
package poller
