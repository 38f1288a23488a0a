//! Raw ids from Python, factorized: the distinct ids as strings and one code per
//! element. `predict` takes 100,000 pairs; turning each element into an owned
//! `String` (and before that calling `str()` on it in Python) cost more than scoring
//! them, while real inputs hold a few thousand distinct ids. So each element costs an
//! address lookup when its object was seen before (a DataFrame column repeats the
//! same objects), else a read of its text, borrowed from the `str` object itself
//! (CPython keeps a string's UTF-8 form: [`text`]), and a lookup of that text.
//! `recommend` hands the distinct ids back to Python: an exact `str` goes back as
//! the object it came as ([`Codes::unique_objects`]), so no string is made per id
//! either way.

use std::borrow::Cow;

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString};
use rustc_hash::FxHashMap;

use crate::bad;

/// Distinct ids (first-seen order) and, per input element, its index among them.
pub struct Codes {
    /// The distinct ids, as the vocabularies know them (`str()` of each value).
    pub uniques: Vec<String>,
    /// Per element, the index of its id in `uniques`.
    pub codes: Vec<u32>,
    /// Per distinct id, the first element that named it when that was an exact
    /// `str` (the same text as `uniques`), else `None`.
    firsts: Vec<Option<Py<PyAny>>>,
}

impl Codes {
    /// The distinct ids as string slices.
    pub fn unique_strs(&self) -> Vec<&str> {
        self.uniques.iter().map(String::as_str).collect()
    }

    /// The distinct ids as Python `str`s: each one's first element when that was an
    /// exact `str`, else a new `str` of its text.
    pub fn unique_objects<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyAny>> {
        self.firsts
            .iter()
            .zip(&self.uniques)
            .map(|(first, text)| match first {
                Some(o) => o.bind(py).clone(),
                None => PyString::new(py, text).into_any(),
            })
            .collect()
    }

    fn intern(
        &mut self,
        by_text: &mut FxHashMap<String, u32>,
        text: &str,
        first: Option<&Bound<'_, PyAny>>,
    ) -> u32 {
        if let Some(&c) = by_text.get(text) {
            return c;
        }
        let c = self.uniques.len() as u32;
        self.uniques.push(text.to_owned());
        self.firsts.push(first.map(|o| o.clone().unbind()));
        by_text.insert(text.to_owned(), c);
        c
    }
}

/// The UTF-8 text of a `str`, borrowed from the object: CPython encodes a string
/// once and keeps the result with it (for an ASCII string, its own characters).
/// PyO3 offers that (`PyString::to_str`) only under the limited API of Python 3.10
/// and later, and otherwise copies the text into a new `bytes` object on every read;
/// `PyUnicode_AsUTF8AndSize` is exported by every CPython 3 build, only joining the
/// stable ABI's list in 3.10. On Windows, where an abi3 module links `python3.dll`
/// (the stable ABI's symbols alone), the text is read through PyO3.
#[cfg(not(windows))]
#[allow(unsafe_code)]
fn text<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    use pyo3::ffi::{PyObject, Py_ssize_t};
    extern "C" {
        fn PyUnicode_AsUTF8AndSize(unicode: *mut PyObject, size: *mut Py_ssize_t) -> *const u8;
    }
    let mut len: Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` (a strong reference held by the caller for `'a`)
    // and the GIL is held (a `Bound`); the function writes `len` and returns the
    // string's own UTF-8 buffer or NULL with a Python error set.
    let ptr = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
    if ptr.is_null() {
        return Err(PyErr::fetch(s.py()));
    }
    let len = usize::try_from(len).map_err(|_| bad("a str reported a negative length"))?;
    // SAFETY: CPython's buffer holds `len` bytes and lives as long as the object,
    // which `'a` keeps alive; a `str` is immutable, so they never change.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    // CPython's own encoder wrote them (no lone surrogates get this far): valid
    // UTF-8, checked anyway (a few ns for an id).
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|e| bad(format!("a str's UTF-8 form is not valid UTF-8 ({e})")))
}

/// The text of a `str` ([`text`] elsewhere): PyO3's copy.
#[cfg(windows)]
fn text<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    s.to_cow()
}

/// Factorizes `values`: a `list` of ids (`str`, or anything whose `str()` is the id:
/// ints, numpy integers) or a 1-d numpy integer array (`int64`). `name` names the
/// parameter in errors.
pub fn factorize(values: &Bound<'_, PyAny>, name: &str) -> PyResult<Codes> {
    let mut out = Codes {
        uniques: Vec::new(),
        codes: Vec::new(),
        firsts: Vec::new(),
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
                    let c = out.intern(&mut by_text, &v.to_string(), None);
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
    // names one object throughout. Fresh objects (one per element) would only fill
    // the address map, so once most of a block of 1,024 elements are new addresses,
    // no more go in. The text decides the id: `"1"` and `1` are the same id (as
    // `str()` of each), but `1.0` is `"1.0"` and `True` is `"True"`.
    let mut by_object: FxHashMap<usize, u32> = FxHashMap::default();
    let (mut by_address, mut misses) = (true, 0usize);
    out.codes.reserve(list.len());
    // Room for the first block's ids without growing (most calls fit in it).
    by_object.reserve(list.len().min(1024));
    by_text.reserve(list.len().min(1024));
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
        let c = if let Ok(s) = v.cast::<PyString>() {
            // A `str` or a subclass: its text is the id. Only an exact `str` may
            // stand for the id when it goes back to Python.
            let first = v.is_exact_instance_of::<PyString>().then_some(&v);
            out.intern(&mut by_text, &text(s)?, first)
        } else if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
            match v.extract::<i64>() {
                Ok(i) => out.intern(&mut by_text, &i.to_string(), None),
                Err(_) => out.intern(&mut by_text, &v.str()?.to_cow()?, None),
            }
        } else {
            // What the earlier `[str(v) for v in values]` did for other values (numpy
            // integers, floats).
            out.intern(&mut by_text, &v.str()?.to_cow()?, None)
        };
        if by_address {
            by_object.insert(key, c);
        }
        out.codes.push(c);
    }
    Ok(out)
}
