"""Front door 2: the operator's CLI. Commands parse, call a service, render."""
