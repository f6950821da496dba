// Placeholder until the flux objects land: no files.
{}
