"""Reader of the TestSNAP reference headers in ../shared/data/testsnap_refdata (C struct literals)."""
import re
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def read_refdata(name):
    """Fields of one ``refdata_*.h``: ints, rcutfac, and arrays coeff, idlist, jlist, rij, fj."""
    text = (SHARED / "testsnap_refdata" / name).read_text()
    body = text[text.index("REFDATA refdata = {"):]
    data = {}
    for key in ("ninside", "twojmax", "ncoeff", "nlocal", "nghost"):
        value = re.search(rf"\.{key}\s*=\s*([A-Z_0-9]+)", body).group(1)
        if not value.isdigit():
            value = re.search(rf"#define {value} (\d+)", text).group(1)
        data[key] = int(value)
    data["rcutfac"] = float(re.search(r"\.rcutfac\s*=\s*([-+0-9.eE]+)", body).group(1))
    for key in ("coeff", "idlist", "jlist", "rij", "fj"):
        block = re.search(rf"\.{key}\s*=\s*\{{(.*?)\}}", body, re.S).group(1)
        data[key] = np.array([float(v) for v in block.replace(",", " ").split()])
    for key in ("idlist", "jlist"):
        data[key] = data[key].astype(np.int64)
    data["rij"] = data["rij"].reshape(-1, 3)
    data["fj"] = data["fj"].reshape(-1, 3)
    return data
