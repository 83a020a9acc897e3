"""The operator's commands beside `serve`, each on the server's own components: `cache` (stats, purge,
verify), `warm`, `presign` and `uploads` (list and abort uploads a crash left open)."""
