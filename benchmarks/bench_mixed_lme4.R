# lme4 side of benchmarks/bench_mixed.py: fit one simulated TA growth design and print JSON.
# Usage: Rscript bench_mixed_lme4.R data.csv levels repeats [outcomes.csv]
# Timing covers lmer() only (the CSV is read and ids made factors beforehand); best of `repeats`.
# With outcomes.csv (one column per new outcome, rows as data.csv): refit mode -- lmer() once
# (untimed), then refit(m, y) for every column, timed together; prints seconds and logLiks.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
levels <- as.integer(args[2])
repeats <- as.integer(args[3])
d$ta_model <- factor(d$ta_model, levels = c("push", "co_creation", "hybrid"))
d$org_id <- factor(d$org_id)
d$provider_id <- factor(d$provider_id)
f <- if (levels == 2) {
  y ~ time * ta_model + (time | org_id)
} else {
  y ~ time * ta_model + (time | org_id) + (1 | provider_id)
}
if (length(args) >= 4) {
  ys <- as.matrix(read.csv(args[4], header = FALSE))
  m <- lmer(f, d, REML = TRUE)
  ll <- numeric(ncol(ys))
  th <- vector("list", ncol(ys))
  gc()
  tm <- system.time(for (k in seq_len(ncol(ys))) {
    mk <- suppressMessages(suppressWarnings(refit(m, ys[, k])))
    ll[k] <- as.numeric(logLik(mk))
    th[[k]] <- getME(mk, "theta")
  })
  # Untimed check: the REML log-likelihood at each refit's own theta, from a fresh deviance
  # function on the new outcome (lme4 1.1-31's refit() reports a logLik that can differ).
  ll_theta <- vapply(seq_len(ncol(ys)), function(k) {
    dk <- d
    dk$y <- ys[, k]
    -lmer(f, dk, REML = TRUE, devFunOnly = TRUE)(th[[k]]) / 2
  }, numeric(1))
  cat(toJSON(list(
    seconds = unname(tm["elapsed"]), loglik_reported = I(ll), loglik = I(ll_theta),
    how = "refit(m, y)",
    lme4_version = as.character(packageVersion("lme4")), R_version = R.version.string
  ), digits = NA, auto_unbox = TRUE))
  quit(save = "no")
}
times <- numeric(0)
for (r in seq_len(repeats)) {
  gc()
  tm <- system.time(m <- lmer(f, d, REML = TRUE))
  times <- c(times, unname(tm["elapsed"]))
}
vc <- VarCorr(m)
cat(toJSON(list(
  times = I(times),
  beta = unname(fixef(m)), fixed_names = names(fixef(m)),
  covariances = lapply(names(vc), function(g) unname(as.matrix(vc[[g]]))),
  sigma2 = sigma(m)^2, loglik = as.numeric(logLik(m)), theta = unname(getME(m, "theta")),
  singular = isSingular(m), messages = m@optinfo$conv$lme4$messages,
  lme4_version = as.character(packageVersion("lme4")), R_version = R.version.string
), digits = NA, auto_unbox = TRUE))
