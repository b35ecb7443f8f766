# Reference fit for study/analysis/glmm.py: lme4::glmer, Laplace (nAGQ = 1), bobyqa.
# Usage: Rscript glmer_fit.R data.csv "correct ~ condition * experience + (1|reader) + (1|case)" [experience=junior ...]
# Any lme4 intercept structure works, e.g. cases nested in patients: "... + (1|reader) + (1|patient/case)".
# With the argument "fixef.prior=normal" the fit is blme::bglmer(..., fixef.prior = normal, cov.prior = NULL):
# normal priors N(0, 10^2) on the intercept and N(0, 2.5^2) on the other fixed effects, no covariance prior.
# Prints one JSON object: fixed effects (R names), SEs, random-effect SDs, logLik, fit seconds.
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
csv <- args[1]
form <- if (length(args) >= 2) args[2] else "correct ~ condition * experience + (1|reader) + (1|case)"
refs <- if (length(args) >= 3) args[3:length(args)] else character(0)
with_prior <- "fixef.prior=normal" %in% refs
refs <- setdiff(refs, "fixef.prior=normal")
d <- read.csv(csv, stringsAsFactors = FALSE)
for (col in names(d)) if (is.character(d[[col]])) d[[col]] <- factor(d[[col]])
if ("condition" %in% names(d)) d$condition <- relevel(d$condition, ref = "unaided")
for (r in refs) {
  kv <- strsplit(r, "=", fixed = TRUE)[[1]]
  d[[kv[1]]] <- relevel(d[[kv[1]]], ref = kv[2])
}
t0 <- proc.time()[["elapsed"]]
if (with_prior) {
  suppressPackageStartupMessages(library(blme))
  m <- bglmer(as.formula(form), data = d, family = binomial, nAGQ = 1,
              control = glmerControl(optimizer = "bobyqa"), fixef.prior = normal, cov.prior = NULL)
} else {
  m <- glmer(as.formula(form), data = d, family = binomial, nAGQ = 1,
             control = glmerControl(optimizer = "bobyqa"))
}
fit_seconds <- proc.time()[["elapsed"]] - t0
fe <- fixef(m)
se <- sqrt(diag(as.matrix(vcov(m))))
vc <- as.data.frame(VarCorr(m))
num <- function(x) formatC(x, digits = 12, format = "g")
q <- function(x) paste0('"', x, '"')
sds <- paste0(q(paste0(vc$grp, "_sd")), ": ", num(vc$sdcor), collapse = ", ")
terms <- paste0("{", q("term"), ": ", q(names(fe)), ", ", q("estimate"), ": ", num(fe),
                ", ", q("se"), ": ", num(se), "}", collapse = ", ")
conv <- length(m@optinfo$conv$lme4$messages) == 0
cat(paste0("{", q("fixed_effects"), ": [", terms, "], ", q("random_effects"), ": {", sds, "}, ",
           q("loglik"), ": ", num(as.numeric(logLik(m))), ", ", q("fit_seconds"), ": ", num(fit_seconds),
           ", ", q("converged"), ": ", tolower(as.character(conv)), ", ",
           q("lme4_version"), ": ", q(as.character(packageVersion("lme4"))), "}\n"))
