package fakewechat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Run serves a standalone fake WeChat on addr until ctx is done, for client
// teams and scripts. It prints to stdout the base URL, the appid and secret
// to configure wxlogin with, and how to obtain codes. It returns nil after a
// graceful shutdown, or the error that kept it from serving.
func Run(ctx context.Context, addr string, opts Options, stdout io.Writer) error {
	if opts.AppID == "" || opts.Secret == "" {
		return errors.New("fakewechat: Options.AppID and Options.Secret are required")
	}
	fake := New(opts)
	defer fake.Close()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("fakewechat: listen: %w", err)
	}
	srv := &http.Server{
		Handler:           fake,
		ReadHeaderTimeout: 5 * time.Second,
	}
	base := "http://" + displayAddr(ln.Addr())
	printHelp(stdout, base, fake)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("fakewechat: serve: %w", err)
	case <-ctx.Done():
	}
	fake.Close() // let hanging requests go before draining
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	<-served
	return nil
}

// displayAddr turns a listening address into one a client can dial: an
// unspecified host (":8081", "0.0.0.0:8081") becomes localhost.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return net.JoinHostPort("localhost", fmt.Sprint(tcp.Port))
	}
	return tcp.String()
}

func printHelp(w io.Writer, base string, s *Server) {
	fmt.Fprintf(w, `fake WeChat API listening on %[1]s

Point wxlogin at it:
  WECHAT_API_BASE=%[1]s
  WECHAT_APPID=%[2]s
  WECHAT_SECRET=%[3]s

Get a login code, as wx.login would (single use, valid %[4]s):
  curl '%[1]s/fake/wx.login?user=alice'                     dev user "alice"
  curl '%[1]s/fake/wx.login?openid=OPENID&unionid=UNIONID'  any user (unionid optional)
  -> {"code":"..."}

Codes that need no minting:
  dev-<name>   always valid and reusable; logs in as dev user <name> ([a-z0-9_-]{1,32})
  fault-busy, fault-ratelimit, fault-risky, fault-slow, fault-html502,
  fault-truncated, fault-hang
               WeChat misbehaving that way (errcode -1, 45011, 40226, a slow answer,
               an HTML 502, JSON cut in half, no answer) on every request

Get a phone code, as the getPhoneNumber button would (single use, valid %[4]s):
  curl '%[1]s/fake/phonecode?openid=OPENID&phone=13800000000'            mainland China: answered bare
  curl '%[1]s/fake/phonecode?openid=OPENID&phone=61234567&country=852'   elsewhere: answered +85261234567
  -> {"code":"..."}
  fault-quota, fault-otherapp as phone codes: out of quota (errno 1400001), a code
               from another mini-program (40013)

Session keys: %[6]s
  (-session-keys exchange: a new one on every login; keep: kept across logins;
  issue: a new one when wx.login issues a code, exchanged or not)

The APIs, as WeChat serves them (access tokens live %[5]s):
  GET  %[1]s/sns/jscode2session?appid=APPID&secret=SECRET&js_code=CODE&grant_type=authorization_code
  POST %[1]s/cgi-bin/stable_token  {"grant_type":"client_credential","appid":"APPID","secret":"SECRET","force_refresh":false}
  GET  %[1]s/cgi-bin/token?grant_type=client_credential&appid=APPID&secret=SECRET
  POST %[1]s/wxa/business/getuserphonenumber?access_token=TOKEN  {"code":"CODE","openid":"OPENID"}
  GET  %[1]s/wxa/checksession?access_token=TOKEN&openid=OPENID&signature=SIG&sig_method=hmac_sha256
  GET  %[1]s/wxa/resetusersessionkey?access_token=TOKEN&openid=OPENID&signature=SIG&sig_method=hmac_sha256
  POST %[1]s/wxa/getwxacodeunlimit?access_token=TOKEN  {"scene":"SCENE","page":"pages/index/index","width":430}
       -> a PNG QR code whose text is wxlogin-fake-wxacode:page=PAGE&scene=SCENE
`, base, s.AppID(), s.Secret(), s.ttl, s.tokenTTL, s.keyMode.describe())
}
