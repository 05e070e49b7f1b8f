-- A render server's identity: the sha256 of the secret key kept in its state folder.
-- Empty until the server first says hello with a key (servers enrolled before keys existed).
ALTER TABLE servers ADD COLUMN key_hash TEXT NOT NULL DEFAULT '';
