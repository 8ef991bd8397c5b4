"""The catalog: products, seeding, the stock ledger and its checks. The bottom layer."""
