// Placeholder until the argocd objects land: no files.
{}
