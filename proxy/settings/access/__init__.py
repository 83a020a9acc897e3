"""Settings of who may read what: private buckets and the tokens that open them."""
