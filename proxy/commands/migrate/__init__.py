"""`preview-proxy migrate`: the main storage copied into a provider of the links file, resumable and verified."""
