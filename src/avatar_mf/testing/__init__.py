"""Shipped fakes: a fake clock, a recording transport, and the test UE. Used by the product's
own tests and by anyone who builds on avatar_mf."""
