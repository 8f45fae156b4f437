package auth

import (
	"context"
	"time"

	"github.com/wxlogin/wxlogin/ent/logincode"
)

// PurgeExpiredCodes deletes code records past their window, and claims whose holder
// died with them.
func (s *Service) PurgeExpiredCodes(ctx context.Context) (int, error) {
	return s.db.LoginCode.Delete().Where(logincode.ExpiresAtLT(s.clock())).Exec(ctx)
}

// RunHousekeeping purges expired code records every interval until ctx ends.
func (s *Service) RunHousekeeping(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.PurgeExpiredCodes(ctx); err != nil {
				s.log.WarnContext(ctx, "auth: purging expired login codes", "error", err)
			} else if n > 0 {
				s.log.DebugContext(ctx, "auth: purged expired login codes", "rows", n)
			}
		}
	}
}

// upsertAccount finds or creates the identity for (appid, openid) and its user, and
// stores the new session_key sealed. Racing first logins of one openid are settled by
