-- login_codes and phone_codes are keyed by UUIDs made by wxlogin, as every other table
-- is, instead of AUTO_INCREMENT: on TiDB those ids are random, and sequential ones would
-- send every claim to one region. The rows live minutes; those there now get new ids.
-- Instances of an earlier version cannot claim codes once this has run: upgrade them
-- together.
-- Modify "login_codes" table
ALTER TABLE `login_codes` MODIFY COLUMN `id` char(36) NOT NULL;
UPDATE `login_codes` SET `id` = UUID();
ALTER TABLE `login_codes` MODIFY COLUMN `id` uuid NOT NULL;
-- Modify "phone_codes" table
ALTER TABLE `phone_codes` MODIFY COLUMN `id` char(36) NOT NULL;
UPDATE `phone_codes` SET `id` = UUID();
ALTER TABLE `phone_codes` MODIFY COLUMN `id` uuid NOT NULL;
