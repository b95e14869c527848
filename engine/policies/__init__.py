"""The shop-wide policies of LANGUAGE.md 3.8: consent, `exclude`, quiet hours and `limit`."""
