# R side of benchmarks/bench_glmm.py: fit the binary nested GLMM with lme4::glmer or glmmTMB.
# Usage: Rscript bench_glmm.R data.csv {lme4|lme4_tight|glmmTMB} repeats
# lme4 uses glmer's default control; lme4_tight sets tolPwrss = 1e-12 (PIRLS run to
# convergence, so its Laplace log-likelihood is the converged one).
# Timing covers the fit call only (the CSV is read and ids made factors beforehand); every
# repeat is reported (the Python side takes the median). Prints one JSON line.
suppressPackageStartupMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
peer <- args[2]
repeats <- as.integer(args[3])
d$provider_id <- factor(d$provider_id)
d$org_id <- factor(d$org_id)
f <- y ~ x + arm + (1 | provider_id / org_id)

vm <- function(field) {
  s <- tryCatch(readLines("/proc/self/status"), error = function(e) character(0))
  line <- grep(paste0("^", field, ":"), s, value = TRUE)
  if (length(line) == 0) NA_real_ else as.numeric(strsplit(trimws(sub(".*:", "", line)), " +")[[1]][1]) / 1024
}
reset_peak <- function() try(writeLines("5", "/proc/self/clear_refs"), silent = TRUE)

times <- numeric(0)
msgs <- character(0)
if (peer %in% c("lme4", "lme4_tight")) {
  suppressPackageStartupMessages(library(lme4))
  ctrl <- if (peer == "lme4") glmerControl() else glmerControl(tolPwrss = 1e-12)
  rss_before <- vm("VmRSS")
  for (r in seq_len(repeats)) {
    gc()
    reset_peak()
    tm <- system.time(m <- withCallingHandlers(
      glmer(f, data = d, family = binomial, control = ctrl),
      warning = function(w) {
        msgs <<- c(msgs, conditionMessage(w))
        invokeRestart("muffleWarning")
      }
    ))
    times <- c(times, unname(tm["elapsed"]))
  }
  peak <- vm("VmHWM")
  conv <- m@optinfo$conv$lme4$messages
  res <- list(
    times = I(times), beta = I(unname(fixef(m))), fixed_names = I(names(fixef(m))),
    sds = I(unname(sapply(VarCorr(m), attr, "stddev"))), loglik = as.numeric(logLik(m)),
    converged = length(conv) == 0 && m@optinfo$conv$opt == 0,
    singular = isSingular(m), messages = I(unique(c(conv, msgs))),
    rss_before_mb = rss_before, peak_rss_mb = peak,
    version = as.character(packageVersion("lme4")), how = if (peer == "lme4") "glmer, default control" else "glmer, tolPwrss = 1e-12"
  )
} else {
  suppressPackageStartupMessages(library(glmmTMB))
  rss_before <- vm("VmRSS")
  for (r in seq_len(repeats)) {
    gc()
    reset_peak()
    tm <- system.time(m <- withCallingHandlers(
      glmmTMB(f, data = d, family = binomial),
      warning = function(w) {
        msgs <<- c(msgs, conditionMessage(w))
        invokeRestart("muffleWarning")
      }
    ))
    times <- c(times, unname(tm["elapsed"]))
  }
  peak <- vm("VmHWM")
  res <- list(
    times = I(times), beta = I(unname(fixef(m)$cond)), fixed_names = I(names(fixef(m)$cond)),
    sds = I(unname(unlist(lapply(VarCorr(m)$cond, attr, "stddev")))),
    loglik = as.numeric(logLik(m)),
    converged = isTRUE(m$fit$convergence == 0) && isTRUE(m$sdr$pdHess),
    singular = FALSE,
    messages = I(unique(c(if (!isTRUE(m$fit$convergence == 0)) m$fit$message, msgs))),
    rss_before_mb = rss_before, peak_rss_mb = peak,
    version = as.character(packageVersion("glmmTMB")), how = "glmmTMB(f, binomial)"
  )
}
res$R_version <- R.version.string
cat(toJSON(res, digits = NA, auto_unbox = TRUE, na = "null"), "\n")
