"""What leaves the study for people: exports, the HTML report, times as investigators read them."""
