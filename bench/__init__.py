"""postback-relay's benchmark: cold start, warm per-webhook time, AWS calls, memory and cost, each measured
side by side with its floor in the same run. Run it with ``make bench``; see bench/RESULTS.md."""
