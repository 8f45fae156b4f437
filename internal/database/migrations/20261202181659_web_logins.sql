-- Modify "audit_events" table
ALTER TABLE `audit_events` MODIFY COLUMN `event` enum('login_succeeded','login_failed','logout','session_revoked','logout_all','session_evicted','deleted','identity_deleted','profile_cleared','blocked','unblocked','web_login_started','web_login_scanned','web_login_confirmed','web_login_cancelled','web_login_succeeded') NOT NULL;
-- Modify "sessions" table
ALTER TABLE `sessions` ADD COLUMN `web` bool NOT NULL DEFAULT 0;
-- Create "web_logins" table
CREATE TABLE `web_logins` (`id` uuid NOT NULL, `secret_hash` binary(32) NOT NULL, `state` enum('waiting','scanned','confirmed','cancelled','taken') NOT NULL DEFAULT 'waiting', `ip` varchar(64) NULL, `user_agent` varchar(512) NULL, `created_at` datetime(6) NOT NULL, `expires_at` datetime(6) NOT NULL, `user_id` uuid NULL, `identity_id` uuid NULL, `session_id` uuid NULL, PRIMARY KEY (`id`), INDEX `weblogin_expires_at` (`expires_at`)) CHARSET utf8mb4 COLLATE utf8mb4_bin;
