-- A price override on a line of the cashier screen's cart (issue #14): the
-- price the cashier typed, in centavos per piece or per kg, kept with the
-- line until the sale is paid (NULL: the shelf price). The supervisor's
-- approval is asked when paying, not stored here.
ALTER TABLE ui_cart_lines ADD COLUMN unit_price INTEGER
    CHECK (unit_price IS NULL OR unit_price >= 0);
