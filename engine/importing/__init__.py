"""Reading the shop's customers and events (LANGUAGE.md section 4); see
`engine.importing.importers`."""
