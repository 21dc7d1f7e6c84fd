// Package version says which build of feedmon this is.
package version

// Version is set at build time with
// -ldflags "-X github.com/feedmon/feedmon/internal/version.Version=v1.2.3".
var Version = "dev"

// ProjectURL is where feedmon lives; it is named in the poller's User-Agent
// so that publishers can find out who is fetching.
const ProjectURL = "https://github.com/feedmon/feedmon"

// UserAgent is the poller's default User-Agent.
func UserAgent() string { return "feedmon/" + Version + " (+" + ProjectURL + ")" }
