"""Mixed (multilevel) models: lme4-style formulas, growth models, engines."""
