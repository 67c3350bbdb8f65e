"""SQL of the dispatch centers."""

INSERT_CENTER = """
INSERT INTO dispatch_centers (id, name, callback_url, api_key_hash, webhook_secret)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, name, callback_url, created_at
"""

GET_CENTER = """
SELECT id, name, callback_url, webhook_secret, created_at FROM dispatch_centers WHERE id = $1
"""
