package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/feedmon/feedmon/internal/event"
)

// sink is the webhook receiver; it records each item's fetch → delivery
// latency once (a re-send would be a bug, counted separately).
//
// It runs in the measured process but stands for a receiver elsewhere, so
// it should cost as little as it can: it speaks just the HTTP/1.1 a
// webhook POST needs (keep-alive, a Content-Length body, 204 back) on the
// bare connection, which costs a fraction of what net/http's server spends
// per request, and decodes only the three fields it uses.
type sink struct {
	ln    net.Listener
	url   string
	count atomic.Int64
	mu    sync.Mutex
	seen  map[string]bool
	// arrived, when kept, is when each item was first received.
	arrived map[string]time.Time
	lat     []time.Duration
	// fresh are publication → delivery times, when published knows them.
	fresh     []time.Duration
	published func(link string) (time.Time, bool)

	conns sync.Map // net.Conn → struct{}: closed by Close
	wg    sync.WaitGroup
}

// maxSinkBody bounds one request's body.
const maxSinkBody = 16 << 20

func newSink(total int, published func(string) (time.Time, bool), keepArrivals bool) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: sink: %w", err)
	}
	s := &sink{ln: ln, url: "http://" + ln.Addr().String() + "/hook", seen: make(map[string]bool, total), lat: make([]time.Duration, 0, total), published: published}
	if keepArrivals {
		s.arrived = make(map[string]time.Time, total)
	}
	s.wg.Go(s.accept)
	return s, nil
}

// Close stops listening, closes the connections and waits for their
// goroutines.
func (s *sink) Close() {
	s.ln.Close()
	s.conns.Range(func(c, _ any) bool {
		c.(net.Conn).Close()
		return true
	})
	s.wg.Wait()
}

func (s *sink) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.conns.Store(c, struct{}{})
		s.wg.Go(func() {
			defer s.conns.Delete(c)
			defer c.Close()
			s.serveConn(c)
		})
	}
}

// errNoLength: a request body without Content-Length (chunked), which the
// sink does not read; feedmon's webhook always sends the length.
var errNoLength = errors.New("no Content-Length")

// serveConn answers the requests of one connection until the client
// closes it, asks to, or sends something the sink does not speak.
func (s *sink) serveConn(c net.Conn) {
	r := bufio.NewReaderSize(c, 32<<10)
	var body []byte
	for {
		req, err := readRequestHead(r)
		if err != nil {
			if errors.Is(err, errNoLength) {
				io.WriteString(c, "HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}
			return
		}
		if req.expectContinue {
			if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
				return
			}
		}
		body = slices.Grow(body[:0], req.length)[:req.length]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		status := "HTTP/1.1 204 No Content\r\n\r\n"
		if err := s.record(time.Now(), body); err != nil {
			status = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
		}
		if _, err := io.WriteString(c, status); err != nil || req.close {
			return
		}
	}
}

// requestHead is what the sink reads of a request's head.
type requestHead struct {
	length         int
	close          bool
	expectContinue bool
}

// readRequestHead reads a request line and headers up to the blank line.
func readRequestHead(r *bufio.Reader) (requestHead, error) {
	h := requestHead{length: -1}
	line, err := r.ReadSlice('\n')
	if err != nil {
		return h, err
	}
	if !bytes.HasPrefix(line, []byte("POST ")) {
		return h, fmt.Errorf("bench: sink: request %q", line)
	}
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return h, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return h, fmt.Errorf("bench: sink: header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 || n > maxSinkBody {
				return h, fmt.Errorf("bench: sink: Content-Length %q", value)
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Connection")):
			h.close = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Expect")):
			h.expectContinue = bytes.EqualFold(value, []byte("100-continue"))
		}
	}
	if h.length < 0 {
		return h, errNoLength
	}
	return h, nil
}

// record counts the items of one delivery received at now. (go-json
// decodes from a copy of its input: nothing decoded points into data.)
func (s *sink) record(now time.Time, data []byte) error {
	var body struct {
		Items []*sinkItem `json:"items"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return fmt.Errorf("bench: sink: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range body.Items {
		if s.seen[it.ID] {
			continue
		}
		s.seen[it.ID] = true
		if s.arrived != nil {
			s.arrived[it.ID] = now
		}
		if f := it.FetchedTime(); !f.IsZero() {
			s.lat = append(s.lat, now.Sub(f))
		}
		if p, ok := s.published(it.Link); ok {
			s.fresh = append(s.fresh, now.Sub(p))
		}
		s.count.Add(1)
	}
	return nil
}

// sinkItem is what the sink reads of each delivered item.
type sinkItem struct {
	ID        string `json:"id"`
	Link      string `json:"link"`
	FetchedAt string `json:"fetched_at"`
}

// FetchedTime is as event.Item's.
func (it *sinkItem) FetchedTime() time.Time {
	return (&event.Item{FetchedAt: it.FetchedAt}).FetchedTime()
}

// arrivals returns when each item was first received (nil unless kept).
func (s *sink) arrivals() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.arrived)
}

// latencies returns fetch → delivery and publication → delivery times,
// sorted.
func (s *sink) latencies() (lat, fresh []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lat, fresh = slices.Clone(s.lat), slices.Clone(s.fresh)
	slices.Sort(lat)
	slices.Sort(fresh)
	return lat, fresh
}
