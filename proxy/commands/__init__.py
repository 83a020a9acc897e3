"""The operator's commands beside `serve`, each on the server's own components: `cache` (stats, purge,
verify), `warm`, `presign`, `uploads` (list and abort uploads a crash left open) and `migrate` (in its
own folder)."""
