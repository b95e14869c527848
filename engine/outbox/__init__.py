"""What was decided, recorded once (the ledger and its transactional outbox), then delivered:
templates rendered, channels called, coupons and tasks handed out."""
