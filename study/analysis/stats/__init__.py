"""Pure statistics: mixed models, OR-MRMC, U-statistics, sizing, simulation. No study, no database."""
