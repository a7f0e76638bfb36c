"""Records: plain data (configs, limits, trials, results, statistics, units, errors, defaults);
they import nothing above them."""
