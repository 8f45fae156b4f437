package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
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
	now := time.Now().UTC()
	userID, identID, sessID := uuid.New(), uuid.New(), uuid.New()
	openid := p.openid(i)
	sessionKey := make([]byte, 60) // as long as a sealed session_key
	rand.Read(sessionKey)
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
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO login_codes (code_hash, state, lease_until, expires_at, identity_id, user_id, new_user, created_at) VALUES (?, 'done', ?, ?, ?, ?, 1, ?)",
		codeHash[:], now, now.Add(5*time.Minute), identID.String(), userID.String(), now); err != nil {
		return err
	}
	return tx.Commit()
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
		"INSERT INTO login_codes (code_hash, state, lease_until, expires_at, identity_id, user_id, new_user, created_at) VALUES (?, 'done', ?, ?, ?, ?, 0, ?)",
		codeHash[:], now, now.Add(5*time.Minute), identID, userID, now); err != nil {
		return err
	}
	return tx.Commit()
}
