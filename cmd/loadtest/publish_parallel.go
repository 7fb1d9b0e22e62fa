package main

// The HTTP publish rate: -publishers keep-alive connections, each writing
// signed POST /apps/<id>/events requests as raw HTTP/1.1 and reading the
// answer before the next, so the load tool's own cost per request stays
// small next to the server's (net/http's client costs several times more
// on the one core the tool gets).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// publishParallel sends cfg.Publishes events from cfg.Publishers
// connections; -rate, if set, is the total rate across them.
func (lt *loadtest) publishParallel(rep *report) {
	cfg := lt.cfg
	origin, path, _ := eventsURLParts(cfg.HTTP, cfg.AppID)
	if strings.HasPrefix(origin, "https://") {
		rep.FirstPublishErr = "-publishers > 1 speaks plain HTTP only"
		rep.PublishesFailed = cfg.Publishes
		return
	}
	host := strings.TrimPrefix(origin, "http://")
	ctx, cancel := context.WithTimeout(lt.ctx, cfg.publishBudget())
	defer cancel()

	var (
		next       atomic.Int64 // index of the next publish to send
		ok, failed atomic.Int64
		errOnce    sync.Once
		firstErr   string
		wg         sync.WaitGroup
	)
	noteErr := func(s string) { errOnce.Do(func() { firstErr = s }) }
	start := time.Now()
	lt.firstPublishNs = start.UnixNano()
	for w := 0; w < cfg.Publishers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &rawPublisher{host: host, path: path, origin: origin, cfg: &cfg}
			defer p.close()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.Publishes) {
					return
				}
				if cfg.Rate > 0 {
					target := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
					if d := time.Until(target); d > 0 {
						sleepCtx(ctx, d)
					}
				}
				status, body, err := p.post(ctx)
				switch {
				case err != nil:
					failed.Add(1)
					noteErr(err.Error())
					p.close() // reconnect on the next request
				case status != http.StatusOK:
					failed.Add(1)
					noteErr(fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(body)))
				default:
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	rep.PublishSeconds = time.Since(start).Seconds()
	rep.PublishesOK = int(ok.Load())
	rep.PublishesFailed = int(failed.Load())
	if ctx.Err() != nil && rep.PublishesOK+rep.PublishesFailed < cfg.Publishes {
		noteErr("publish phase stopped: " + ctx.Err().Error())
	}
	rep.FirstPublishErr = firstErr
}

// rawPublisher is one keep-alive HTTP/1.1 connection.
type rawPublisher struct {
	host, path, origin string
	cfg                *config
	nc                 net.Conn
	br                 *bufio.Reader
	buf                []byte
}

func (p *rawPublisher) close() {
	if p.nc != nil {
		_ = p.nc.Close()
		p.nc = nil
	}
}

func (p *rawPublisher) post(ctx context.Context) (int, string, error) {
	if p.nc == nil {
		d := &net.Dialer{Timeout: p.cfg.HTTPTimeout, Control: dialControl(p.cfg.AllowRemote)}
		nc, err := d.DialContext(ctx, "tcp", p.host)
		if err != nil {
			return 0, "", err
		}
		p.nc, p.br = nc, bufio.NewReaderSize(nc, 4096)
	}
	now := time.Now()
	body := eventBody(eventName, p.cfg.Channel, now.UnixNano(), p.cfg.Payload)
	u := signedURL(p.origin, p.path, http.MethodPost, p.cfg.Key, p.cfg.Secret, body, now.Unix())
	b := p.buf[:0]
	b = append(b, "POST "...)
	b = append(b, strings.TrimPrefix(u, p.origin)...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, p.host...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	p.buf = b
	_ = p.nc.SetDeadline(now.Add(p.cfg.HTTPTimeout))
	if _, err := p.nc.Write(b); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return 0, "", err
	}
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if resp.Close {
		p.close()
	}
	return resp.StatusCode, string(rb), nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// readCPU returns utime+stime of pid from /proc/<pid>/stat.
func readCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads fields 14 (utime) and 15 (stime) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command field")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: bad utime/stime %q %q", f[11], f[12])
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}
