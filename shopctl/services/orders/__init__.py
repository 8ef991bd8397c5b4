"""Orders: placement, the life cycle (one guarded UPDATE per move), expiry, reports.

Built on catalog and accounts; never imports payments. Work that a higher layer must do
when an order moves registers itself here (see `lifecycle.on_transition`)."""
