package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client speaks to one central's admin listener.
type Client struct {
	base, token string
	http        *http.Client
}

// ErrNoURL means no admin URL was given, neither as a flag nor in EnvURL.
var ErrNoURL = errors.New("no admin URL: give --admin URL or set " + EnvURL)

// NewClient returns a client of the admin listener at base (such as
// http://127.0.0.1:8080) with token as its bearer credential ("" for none).
func NewClient(base, token string) (*Client, error) {
	if base == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an admin listener's URL, such as http://127.0.0.1:8080", base)
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// URL is the admin listener's URL the client speaks to.
func (c *Client) URL() string { return c.base }

// RefusedError is a request the central refused or failed: its status and body.
type RefusedError struct {
	Status int
	Body   Error
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("%s (%d %s)", e.Body.Error, e.Status, http.StatusText(e.Status))
	switch {
	case e.Body.LeaderAdmin != "":
		msg += fmt.Sprintf("; the leader is node %s, its admin listener %s", e.Body.Leader, e.Body.LeaderAdmin)
	case e.Body.Leader != "":
		msg += fmt.Sprintf("; the leader is node %s (its admin URL is not known here)", e.Body.Leader)
	}
	return msg
}

// request sends method path with body (JSON, when not nil) and the token.
func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		re := &RefusedError{Status: resp.StatusCode}
		if json.Unmarshal(b, &re.Body) != nil || re.Body.Error == "" {
			re.Body = Error{Error: strings.TrimSpace(string(b))}
		}
		return nil, re
	}
	return resp, nil
}

// Do sends method path with body and decodes the JSON answer into out
// (nil: the answer is read and dropped). A refusal is a *RefusedError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Stream sends GET path and returns the answer's headers and body, for
// answers too large to hold (a backup); the caller closes the body.
func (c *Client) Stream(ctx context.Context, path string) (http.Header, io.ReadCloser, error) {
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	return resp.Header, resp.Body, nil
}
