"""Tables, figures and files of results, and the authors' own numbers to compare against."""
