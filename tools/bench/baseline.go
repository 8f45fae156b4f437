package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// plainLogin is the login baseline: the database writes a first login makes (a user, its
// identity upserted on appid+openid, a session, the code's idempotency record), with
// plain database/sql in one transaction, on wxlogin's own tables. No HTTP, no GraphQL, no
// WeChat: what is left is what the database itself costs.
type plainLogin struct {
	db    *sql.DB
	appid string
	run   string
}

func (p *plainLogin) login(ctx context.Context, worker, i int) error {
	sessionKey := make([]byte, 60) // as long as a sealed session_key
	rand.Read(sessionKey)
	return p.firstLogin(ctx, p.openid(i), sessionKey, "")
}

// firstLogin makes a first login's writes in one transaction. With claim "" it inserts
// the code's record; otherwise it turns that claim into the record, and fails if the
// claim is gone.
func (p *plainLogin) firstLogin(ctx context.Context, openid string, sessionKey []byte, claim string) error {
	now := time.Now().UTC()
	userID, identID, sessID := uuid.New(), uuid.New(), uuid.New()
	token := make([]byte, 32)
	rand.Read(token)
	tokenHash := sha256.Sum256(token)
	codeHash := sha256.Sum256([]byte(openid))

	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO users (id, created_at, last_login_at) VALUES (?, ?, ?)",
		userID.String(), now, now); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO identities (id, appid, openid, session_key, user_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "+
			"ON DUPLICATE KEY UPDATE session_key = VALUES(session_key), updated_at = VALUES(updated_at)",
		identID.String(), p.appid, openid, sessionKey, userID.String(), now, now); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO sessions (id, token_hash, user_id, identity_id, created_at, last_seen_at, expires_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		sessID.String(), tokenHash[:], userID.String(), identID.String(), now, now, now.Add(30*24*time.Hour), "127.0.0.1", "bench"); err != nil {
		return err
	}
	if claim == "" {
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO login_codes (id, code_hash, state, lease_until, expires_at, identity_id, user_id, new_user, created_at) VALUES (?, ?, 'done', ?, ?, ?, ?, 1, ?)",
			uuid.NewString(), codeHash[:], now, now.Add(5*time.Minute), identID.String(), userID.String(), now); err != nil {
			return err
		}
	} else {
		res, err := tx.ExecContext(ctx,
			"UPDATE login_codes SET state = 'done', identity_id = ?, user_id = ?, new_user = 1 WHERE id = ? AND state = 'pending'",
			identID.String(), userID.String(), claim)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("the claim went: %d rows, %v", n, err)
		}
	}
	return tx.Commit()
}

// floorLogin is the least any login keeping the contract's promises makes on this
// machine, in plain Go: plainLogin's first login, after the code's claim, committed on
// its own so that every instance sees it before WeChat is asked (the code reaches
// WeChat once), and, with weChat set, the code's exchange with the fake WeChat over
// HTTP and the session_key's sealing (AES-256-GCM). The transaction turns the claim
// into the code's record. Compared with it, what is left of a wxlogin login's cost is
// wxlogin's own: HTTP and GraphQL, the audit row, the existence read before a first
// login.
type floorLogin struct {
	plain  *plainLogin
	weChat *weChatClient // nil: the claim alone
	prefix string        // of the users' names, one per floorLogin
}

func (f *floorLogin) login(ctx context.Context, _, i int) error {
	now := time.Now().UTC()
	name := fmt.Sprintf("%s-%s-%d", f.prefix, f.plain.run, i)
	codeHash := sha256.Sum256([]byte("code " + name))
	claim := uuid.NewString()
	_, err := f.plain.db.ExecContext(ctx,
		"INSERT INTO login_codes (id, code_hash, state, lease_until, expires_at, created_at) VALUES (?, ?, 'pending', ?, ?, ?)",
		claim, codeHash[:], now.Add(time.Minute), now.Add(5*time.Minute), now)
	if err != nil {
		return err
	}
	openid := name
	sessionKey := make([]byte, 60)
	rand.Read(sessionKey)
	if f.weChat != nil {
		var key string
		if openid, key, err = f.weChat.code2Session(ctx, name); err != nil {
			return err
		}
		sessionKey = f.weChat.seal(key)
	}
	return f.plain.firstLogin(ctx, openid, sessionKey, claim)
}

// weChatClient asks the fake WeChat for sessions, as a plain Go client would.
type weChatClient struct {
	base string
	fake *fakewechat.Server
	hc   *http.Client
	aead cipher.AEAD
}

func newWeChatClient(base string, fake *fakewechat.Server, conns int) *weChatClient {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	t := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &weChatClient{base: base, fake: fake, hc: &http.Client{Transport: t, Timeout: 10 * time.Second}, aead: aead}
}

func (w *weChatClient) close() { w.hc.CloseIdleConnections() }

// code2Session exchanges a fresh code of the user name for its openid and session_key.
func (w *weChatClient) code2Session(ctx context.Context, name string) (openid, sessionKey string, err error) {
	code := w.fake.IssueCode(fakewechat.User{OpenID: fakewechat.OpenIDFor(w.fake.AppID(), name)})
	q := url.Values{"appid": {w.fake.AppID()}, "secret": {w.fake.Secret()}, "js_code": {code}, "grant_type": {"authorization_code"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.base+"/sns/jscode2session?"+q.Encode(), nil)
	if err != nil {
		return "", "", err
	}
	res, err := w.hc.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	var out struct {
		OpenID     string `json:"openid"`
		SessionKey string `json:"session_key"`
		ErrCode    int    `json:"errcode"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return "", "", err
	}
	if out.ErrCode != 0 || out.OpenID == "" {
		return "", "", fmt.Errorf("WeChat: errcode %d", out.ErrCode)
	}
	return out.OpenID, out.SessionKey, nil
}

// seal encrypts a session_key as wxlogin stores it: a nonce, then AES-256-GCM.
func (w *weChatClient) seal(sessionKey string) []byte {
	nonce := make([]byte, w.aead.NonceSize(), w.aead.NonceSize()+len(sessionKey)+w.aead.Overhead())
	rand.Read(nonce)
	return w.aead.Seal(nonce, nonce, []byte(sessionKey), nil)
}

// openid is the openid of plain first login i.
func (p *plainLogin) openid(i int) string { return fmt.Sprintf("plain-%s-%d", p.run, i) }

// relogin is the returning-login baseline: the writes of a login of an identity that
// exists (its row read and locked, its session_key and its user's login time updated, a
// session, the code's record), in one transaction.
func (p *plainLogin) relogin(ctx context.Context, openid string, i int) error {
	now := time.Now().UTC()
	sessID := uuid.New()
	sessionKey := make([]byte, 60)
	rand.Read(sessionKey)
	token := make([]byte, 32)
	rand.Read(token)
	tokenHash := sha256.Sum256(token)
	codeHash := sha256.Sum256(fmt.Appendf(nil, "plain-again-%s-%d", p.run, i))

	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var identID, userID string
	if err := tx.QueryRowContext(ctx, "SELECT id, user_id FROM identities WHERE appid = ? AND openid = ? FOR UPDATE", p.appid, openid).Scan(&identID, &userID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE identities SET session_key = ?, updated_at = ? WHERE id = ?", sessionKey, now, identID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE users SET last_login_at = ? WHERE id = ?", now, userID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO sessions (id, token_hash, user_id, identity_id, created_at, last_seen_at, expires_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		sessID.String(), tokenHash[:], userID, identID, now, now, now.Add(30*24*time.Hour), "127.0.0.1", "bench"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO login_codes (id, code_hash, state, lease_until, expires_at, identity_id, user_id, new_user, created_at) VALUES (?, ?, 'done', ?, ?, ?, ?, 0, ?)",
		uuid.NewString(), codeHash[:], now, now.Add(5*time.Minute), identID, userID, now); err != nil {
		return err
	}
	return tx.Commit()
}
