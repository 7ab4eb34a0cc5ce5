package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	hmd "github.com/healmydocker/healmydocker/internal/events"
)

// LogsUnavailable is the tail of a container whose log driver the daemon
// cannot read back (none, syslog or gelf without dual logging...).
const LogsUnavailable = "logs unavailable: "

// LogTailBytes bounds the log tail an event carries: a few screens of a
// chat message, and far under a NATS message's limit.
const LogTailBytes = 2048

// LogTail returns the last lines of a container's log, stdout and stderr
// merged in order, keeping at most maxBytes from the end (cut at a line
// start where one is in reach). Control characters other than newline and
// tab are dropped, so the text can be carried anywhere and escaped there.
// A container whose log driver cannot be read gets "logs unavailable:
// <driver>" and no error; lines <= 0 reads nothing.
func (c *Client) LogTail(ctx context.Context, id string, lines, maxBytes int) (string, error) {
	if lines <= 0 || maxBytes <= 0 {
		return "", nil
	}
	res, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("log tail of %s: inspect: %w", hmd.ShortID(id), err)
	}
	return c.readTail(ctx, res.Container, lines, maxBytes)
}

// LastWords reads, with one inspect, what a container said before it is
// restarted: the output of its last failed health probe (as the daemon
// keeps it, untrimmed) and, when lines > 0, its log tail as LogTail reads
// it. A restart storm costs one inspect per container, not one per read.
func (c *Client) LastWords(ctx context.Context, id string, lines, maxBytes int) (failedProbe, logTail string, err error) {
	res, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", "", fmt.Errorf("last words of %s: inspect: %w", hmd.ShortID(id), err)
	}
	ct := res.Container
	failedProbe = fromInspect(ct).FailedProbe
	if lines <= 0 || maxBytes <= 0 {
		return failedProbe, "", nil
	}
	logTail, err = c.readTail(ctx, ct, lines, maxBytes)
	return failedProbe, logTail, err
}

// readTail reads the log tail of an inspected container.
func (c *Client) readTail(ctx context.Context, ct container.InspectResponse, lines, maxBytes int) (string, error) {
	id := ct.ID
	tty := ct.Config != nil && ct.Config.Tty
	driver := ""
	if ct.HostConfig != nil {
		driver = ct.HostConfig.LogConfig.Type
	}
	if driver == "none" {
		return LogsUnavailable + driver, nil
	}
	rc, err := c.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		// The daemon refuses drivers it cannot read with a plain error
		// ("configured logging driver does not support reading").
		if strings.Contains(err.Error(), "does not support reading") {
			return LogsUnavailable + driver, nil
		}
		return "", fmt.Errorf("log tail of %s: %w", hmd.ShortID(id), err)
	}
	defer rc.Close()
	buf := &tailBuffer{max: maxBytes}
	if tty {
		// A TTY's output is one raw stream, not multiplexed.
		_, err = io.Copy(buf, rc)
	} else {
		// One writer for both streams keeps their lines in order.
		_, err = stdcopy.StdCopy(buf, buf, rc)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("log tail of %s: read: %w", hmd.ShortID(id), err)
	}
	return buf.text(), nil
}

// tailBuffer keeps the last max+1 bytes written to it (up to twice that
// while writing, trimmed in one move): the extra byte says whether the
// kept text starts at a line start.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n, keep := len(p), t.max+1
	if len(p) > keep {
		p = p[len(p)-keep:]
		t.b = t.b[:0]
	}
	t.b = append(t.b, p...)
	if len(t.b) > 2*keep {
		t.b = append(t.b[:0], t.b[len(t.b)-keep:]...)
	}
	return n, nil
}

// text is the kept tail: at most max bytes, from a line start if the cut
// fell inside a line and a newline is in reach, valid UTF-8, without
// control characters but newlines and tabs, and without the final newline.
func (t *tailBuffer) text() string {
	b := t.b
	if len(b) > t.max {
		lineStart := b[len(b)-t.max-1] == '\n'
		b = b[len(b)-t.max:]
		if i := strings.IndexByte(string(b), '\n'); !lineStart && i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
	}
	return Clean(string(b))
}

// Clean makes outside text safe to carry: invalid UTF-8 and ANSI escape
// sequences go, as do control characters other than newline and tab;
// carriage returns end lines; the trailing newline goes.
func Clean(s string) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			i += escapeLen(s[i:])
			continue
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
				continue
			}
			b.WriteByte('\n')
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || (r >= 0x7f && r < 0xa0):
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return strings.TrimRight(b.String(), "\n")
}

// escapeLen is the length of the escape sequence at the start of s: CSI
// (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), or ESC and one byte.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return len(s)
	case ']':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	}
	return 2
}
