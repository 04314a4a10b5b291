//! The kernel's counters of a socket (`XDP_STATISTICS`) as a Python dict, for the
//! classes that report them per socket (`Forwarder`, `VhostUser`).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::sys::XdpStatistics;

pub(super) fn kernel_dict<'py>(py: Python<'py>, k: &XdpStatistics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rx_dropped", k.rx_dropped)?;
    d.set_item("rx_invalid_descs", k.rx_invalid_descs)?;
    d.set_item("tx_invalid_descs", k.tx_invalid_descs)?;
    d.set_item("rx_ring_full", k.rx_ring_full)?;
    d.set_item("rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs)?;
    d.set_item("tx_ring_empty_descs", k.tx_ring_empty_descs)?;
    Ok(d)
}
