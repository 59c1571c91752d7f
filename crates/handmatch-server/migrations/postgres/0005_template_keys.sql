-- Templates sealed at rest (AES-256-GCM): the id of the key a row's embedding is sealed
-- under, NULL for a plaintext row. A sealed embedding is a 12-byte nonce, the ciphertext
-- and a 16-byte tag, so its length stays a multiple of 4 (the embedding CHECK) and is the
-- plaintext's plus 28. Keys rotate row by row (`handmatch-server templates rekey`).
ALTER TABLE templates ADD COLUMN key_id TEXT;
