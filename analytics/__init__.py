"""Analytics: detectors, rules and the event lifecycle over sampled frames."""
