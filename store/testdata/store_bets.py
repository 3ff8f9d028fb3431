"""Writes bets.csv the way the course's Python store_bets does, for comparison.

Usage: store_bets.py DATASET.zip OUT.csv
Reads agency-1.csv, agency-2.csv, ... from the zip (first name, last name,
document, birthdate, number) and appends each agency's bets in agency order
with csv.writer under QUOTE_MINIMAL, as store_bets does.
"""
import csv
import datetime
import io
import re
import sys
import zipfile


def main(zip_path, out_path):
    with zipfile.ZipFile(zip_path) as z, open(out_path, "a+") as out:
        names = sorted((n for n in z.namelist() if re.fullmatch(r"agency-\d+\.csv", n)),
                       key=lambda n: int(re.findall(r"\d+", n)[0]))
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
        for name in names:
            agency = int(re.findall(r"\d+", name)[0])
            text = io.TextIOWrapper(z.open(name), encoding="utf-8", newline="")
            for first, last, document, birthdate, number in csv.reader(text):
                writer.writerow([agency, first, last, document,
                                 datetime.date.fromisoformat(birthdate), int(number)])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
