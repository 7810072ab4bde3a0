-- Discounts on the cashier screen's cart: a line's own discount and one on
-- the whole sale, in centavos, kept until the sale is paid (NULL: none).
-- The supervisor's approval, when the discount is beyond the register's
-- limit, is asked when paying, not stored here.
ALTER TABLE ui_cart_lines ADD COLUMN discount INTEGER
    CHECK (discount IS NULL OR discount > 0);
ALTER TABLE ui_cart ADD COLUMN discount INTEGER
    CHECK (discount IS NULL OR discount > 0);
