# Writes lme4's VerbAgg data (Debian's r-cran-lme4 ships it) as CSV for the glmer reference in
# tests/data/README.md. Usage: Rscript verbagg.R out.csv
suppressPackageStartupMessages(library(lme4))
out <- commandArgs(trailingOnly = TRUE)[1]
data(VerbAgg, package = "lme4")
d <- VerbAgg[, c("id", "item", "Anger", "Gender", "btype", "situ", "r2")]
d$r2 <- as.integer(d$r2 == "Y")
write.csv(d, out, row.names = FALSE)
