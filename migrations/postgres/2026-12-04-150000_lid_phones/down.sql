DROP TABLE lid_phones;
