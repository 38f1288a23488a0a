//! Raw ids from Python, factorized: the distinct ids as strings and one code per
//! element. `predict` takes 100,000 pairs; turning each element into an owned
//! `String` (and before that calling `str()` on it in Python) cost more than scoring
//! them, while real inputs hold a few thousand distinct ids. So each element costs an
//! address lookup when its object was seen before (a DataFrame column repeats the
//! same objects), else a lookup in a Python `dict` keyed by the `str` objects
//! themselves (their cached hash and CPython's own comparison: fresh objects with an
//! equal text find the same entry), and a string read only for an id not seen
//! before. Reading a string is what costs: under the abi3 limited API of Python 3.9
//! PyO3 copies every `str` into a new `bytes` object to get its UTF-8.

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString};
use rustc_hash::FxHashMap;

use crate::bad;

/// Distinct ids (first-seen order) and, per input element, its index among them.
pub struct Codes {
    /// The distinct ids, as the vocabularies know them (`str()` of each value).
    pub uniques: Vec<String>,
    /// Per element, the index of its id in `uniques`.
    pub codes: Vec<u32>,
}

impl Codes {
    /// The distinct ids as string slices.
    pub fn unique_strs(&self) -> Vec<&str> {
        self.uniques.iter().map(String::as_str).collect()
    }

    fn intern(&mut self, by_text: &mut FxHashMap<String, u32>, text: &str) -> u32 {
        if let Some(&c) = by_text.get(text) {
            return c;
        }
        let c = self.uniques.len() as u32;
        self.uniques.push(text.to_owned());
        by_text.insert(text.to_owned(), c);
        c
    }
}

/// Factorizes `values`: a `list` of ids (`str`, or anything whose `str()` is the id:
/// ints, numpy integers) or a 1-d numpy integer array (`int64`). `name` names the
/// parameter in errors.
pub fn factorize(values: &Bound<'_, PyAny>, name: &str) -> PyResult<Codes> {
    let mut out = Codes {
        uniques: Vec::new(),
        codes: Vec::new(),
    };
    let mut by_text: FxHashMap<String, u32> = FxHashMap::default();
    if let Ok(a) = values.extract::<PyReadonlyArray1<'_, i64>>() {
        let a = a.as_array();
        let mut by_int: FxHashMap<i64, u32> = FxHashMap::default();
        out.codes.reserve(a.len());
        for &v in a.iter() {
            let c = match by_int.get(&v) {
                Some(&c) => c,
                None => {
                    let c = out.intern(&mut by_text, &v.to_string());
                    by_int.insert(v, c);
                    c
                }
            };
            out.codes.push(c);
        }
        return Ok(out);
    }
    let list = values.cast::<PyList>().map_err(|_| {
        bad(format!(
            "{name}: expected a list of ids or a numpy integer array, found {}",
            values
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))
    })?;
    // Each element is looked up by address first: a column repeats a few objects, and
    // the list holds a reference to every element for the whole call, so an address
    // names one object throughout. On a miss, an exact `str` is looked up by value in
    // a dict of the `str`s seen (only exact `str` keys go in, so `1`, `1.0` and `True`,
    // equal as dict keys, never meet a string); its text is read only when the dict
    // misses too. Fresh objects (one per element) would only fill the address map, so
    // once most of a block of 1,024 elements are new addresses, `str`s stop going in.
    let by_str = PyDict::new(values.py());
    let mut by_object: FxHashMap<usize, u32> = FxHashMap::default();
    let (mut by_address, mut misses) = (true, 0usize);
    out.codes.reserve(list.len());
    for (at, v) in list.iter().enumerate() {
        if at % 1024 == 1023 {
            by_address = by_address && misses < 512;
            misses = 0;
        }
        let key = v.as_ptr() as usize;
        if let Some(&c) = by_object.get(&key) {
            out.codes.push(c);
            continue;
        }
        misses += 1;
        let c = if v.is_exact_instance_of::<PyString>() {
            let c = match by_str.get_item(&v)? {
                Some(c) => c.extract::<u32>()?,
                None => {
                    let c = out.intern(&mut by_text, &v.cast::<PyString>()?.to_cow()?);
                    by_str.set_item(&v, c)?;
                    c
                }
            };
            if !by_address {
                out.codes.push(c);
                continue;
            }
            c
        } else if let Ok(s) = v.cast::<PyString>() {
            // A subclass of `str`: its text is the id.
            out.intern(&mut by_text, &s.to_cow()?)
        } else if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
            match v.extract::<i64>() {
                Ok(i) => out.intern(&mut by_text, &i.to_string()),
                Err(_) => out.intern(&mut by_text, &v.str()?.to_cow()?),
            }
        } else {
            // What the earlier `[str(v) for v in values]` did for other values (numpy
            // integers, floats).
            out.intern(&mut by_text, &v.str()?.to_cow()?)
        };
        by_object.insert(key, c);
        out.codes.push(c);
    }
    Ok(out)
}
