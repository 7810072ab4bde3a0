//! `caja-node customer-edit`: changes the fields given of an existing
//! customer (name, phone, RNC/cédula, credit limit) and keeps the others, in
//! one `CustomerUpserted`.

use caja_node::messages;
use caja_node::register::CustomerEdit;

use super::args::CustomerEditArgs;
use super::common::{emit, op_id, open, Ctx, Failure};

/// `caja-node customer-edit`.
pub(crate) fn customer_edit(cx: &Ctx, args: CustomerEditArgs) -> Result<(), Failure> {
    let op = op_id(&args.op)?;
    let r = open(&cx.dir)?.edit_customer(
        op,
        &CustomerEdit {
            customer_id: args.id,
            name: args.name,
            phone: args.phone,
            tax_id: args.tax_id,
            credit_limit: args.credit_limit.map(|m| m.0),
        },
    )?;
    emit(cx.json, &r, messages::customer_saved)
}
