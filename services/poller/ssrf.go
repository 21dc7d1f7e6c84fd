package poller

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/feedmon/feedmon/internal/config"
)

// ErrForbiddenAddress is returned (wrapped) when a feed, or a hop of its
// redirects, resolves to an address the poller must not reach.
var ErrForbiddenAddress = errors.New("poller: address not allowed")

// Blocked ranges that netip's predicates do not already cover. They are
// parsed once; netip.Prefix values are immutable, so sharing them is safe.
var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
	ietfProto = netip.MustParsePrefix("192.0.0.0/24")
	benchNet  = netip.MustParsePrefix("198.18.0.0/15")
	reserved  = netip.MustParsePrefix("240.0.0.0/4")
	v4compat  = netip.MustParsePrefix("::/96")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	nat64loc  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour = netip.MustParsePrefix("2002::/16")
	siteLocal = netip.MustParsePrefix("fec0::/10")
)

// addrGuard decides which resolved addresses a fetch may connect to. It
// runs in the dialer, after DNS, so it sees the address actually dialled on
// every redirect hop and cannot be fooled by DNS rebinding.
type addrGuard struct {
	allow []netip.Prefix
}

func newAddrGuard(networks []string) (*addrGuard, error) {
	g := &addrGuard{}
	for _, n := range networks {
		p, err := config.ParseNetwork(n)
		if err != nil {
			return nil, fmt.Errorf("poller: allow_networks: %w", err)
		}
		g.allow = append(g.allow, p)
	}
	return g, nil
}

// control is a net.Dialer.Control hook.
func (g *addrGuard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable %s address %q", ErrForbiddenAddress, network, address)
	}
	if !g.allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s is private, loopback, link-local or reserved (see poll.allow_networks)", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

func (g *addrGuard) allowed(a netip.Addr) bool {
	a = a.WithZone("")
	for _, p := range g.allow {
		// An allow-listed range is matched both as written and unmapped,
		// so [127.0.0.0/8] also admits ::ffff:127.0.0.1.
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return true
		}
	}
	return publicAddr(a)
}

// publicAddr reports whether a is a globally routable unicast address.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		a.IsMulticast() {
		return false
	}
	if a.Is4() {
		for _, p := range []netip.Prefix{cgnat, thisNet, ietfProto, benchNet, reserved} {
			if p.Contains(a) {
				return false
			}
		}
		return true
	}
	if siteLocal.Contains(a) || v4compat.Contains(a) {
		return false
	}
	// Translation prefixes carry an IPv4 address inside; judge that one,
	// or 64:ff9b::7f00:1 would reach 127.0.0.1 through a NAT64 gateway.
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return publicAddr(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(a):
		return publicAddr(netip.AddrFrom4([4]byte(b[2:6])))
	case nat64loc.Contains(a):
		return false
	}
	return true
}
