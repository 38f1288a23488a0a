//! Raw ids from Python, factorized: the distinct ids as strings and one code per
//! element. `predict` takes 100,000 pairs; turning each element into an owned
//! `String` (and before that calling `str()` on it in Python) cost more than scoring
//! them, while real inputs hold a few thousand distinct ids. So each element costs a
//! pointer lookup when its object was seen before (a list repeats the same `str`
//! objects, e.g. a DataFrame column), and a string read only when it was not.

use std::collections::HashMap;

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString};

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

    fn intern(&mut self, by_text: &mut HashMap<String, u32>, text: &str) -> u32 {
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
    let mut by_text: HashMap<String, u32> = HashMap::new();
    if let Ok(a) = values.extract::<PyReadonlyArray1<'_, i64>>() {
        let a = a.as_array();
        let mut by_int: HashMap<i64, u32> = HashMap::new();
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
    // The list holds a reference to every element for the whole call, so an address
    // names one object throughout.
    let mut by_object: HashMap<usize, u32> = HashMap::new();
    out.codes.reserve(list.len());
    for v in list.iter() {
        let key = v.as_ptr() as usize;
        let c = match by_object.get(&key) {
            Some(&c) => c,
            None => {
                let c = if let Ok(s) = v.cast::<PyString>() {
                    out.intern(&mut by_text, &s.to_cow()?)
                } else if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
                    match v.extract::<i64>() {
                        Ok(i) => out.intern(&mut by_text, &i.to_string()),
                        Err(_) => out.intern(&mut by_text, &v.str()?.to_cow()?),
                    }
                } else {
                    // What the earlier `[str(v) for v in values]` did for other values
                    // (numpy integers, floats).
                    out.intern(&mut by_text, &v.str()?.to_cow()?)
                };
                by_object.insert(key, c);
                c
            }
        };
        out.codes.push(c);
    }
    Ok(out)
}
